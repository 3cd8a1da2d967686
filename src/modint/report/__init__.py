"""Reports from run directories: the self-contained report.html, paper tables (Markdown, CSV,
LaTeX) and the comparison of runs."""
