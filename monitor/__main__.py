from ragmon.monitor.cli import main

raise SystemExit(main())
