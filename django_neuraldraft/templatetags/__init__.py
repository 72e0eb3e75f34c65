"""Template tag libraries: ``{% load neuraldraft %}``."""
