"""The offline demo (``camtool demo``)."""
