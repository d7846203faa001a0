"""The training and benchmarking engine.

Django-free and TensorFlow-free at import time: the web process imports the pure helpers
(``zoo.count_params``, ``data.describe``, ``techniques.validate_step``) without loading a framework.
"""
