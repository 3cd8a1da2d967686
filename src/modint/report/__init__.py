"""Reports from run directories: HTML, Markdown, CSV (no torch here)."""
