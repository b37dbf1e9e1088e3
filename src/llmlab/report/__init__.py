"""The run's self-contained HTML report: tables, text and plots embedded as PNG data URIs."""
