"""Connectors shipped with the hub.

Each sub-package is registered in the ``hub.connectors`` entry-point group, like any plugin.
"""
