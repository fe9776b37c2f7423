"""The report step: report.md and its plots, from the structured outputs of the other steps."""
