"""``camtool eval``: classification, CAM localization and faithfulness metrics."""
