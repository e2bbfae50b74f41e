"""vlm-bench: a pytest-driven evaluation suite for video vision-language models.

Importing the package imports no torch, transformers or vlmeval; engines import them
when they load.
"""

__version__ = "0.1.0"
