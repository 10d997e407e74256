"""The CAM network and everything that turns images into maps; no settings, no CLI.

Models (``archs``, ``heads``, ``model``), their files (``weights``, ``checkpoint``,
``state_dicts``), runners (``runner``, ``torch_runner``, ``onnx_runner``, ``loading``), maps
(``maps``, ``upsample``, ``receptive``, ``localize``), and outside facts (``imagenet``).
"""
