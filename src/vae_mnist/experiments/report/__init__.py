"""`make report`: a comparison of a baseline with one or more other sides (the workspace, a git
revision, a DVC experiment, a registered version), as an offline HTML page and a Markdown comment
in reports/compare/, every difference judged against the seed-to-seed spread (experiments/noise.py).
"""
