"""The weekly drift report: built from the stored history for a period, rendered as an HTML
email with inline charts and a plain-text twin, sent once per period or written to a file."""
