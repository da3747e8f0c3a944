"""Ready-made adapters for comment frameworks other than relaybridge's default shape.

* :mod:`relaybridge.contrib.django_comments` -- django-contrib-comments
  (``pip install relaybridge[django-comments]``).
"""
