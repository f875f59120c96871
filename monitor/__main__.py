from ragmon.monitor.app import main

raise SystemExit(main())
