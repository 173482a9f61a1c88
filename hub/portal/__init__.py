"""The public portal's view models: what each page shows, built from the catalogue without FastAPI.

- ``i18n``: the two languages (Vietnamese first, English beside it) and the portal's words;
- ``query``: a search page's URL parameters as one ``package_search`` call, and the links that change them;
- ``dataset``: what a dataset page tells (metadata, releases, dictionary, coverage, last run);
- ``preview``: the first rows of a release file (paged, sorted, filtered), chart and map hints;
- ``snippets``: copy-ready curl, ckanapi, pandas and R examples.

``hub.api.portal`` and ``hub.api.portal_dataset`` serve them through the templates under
``hub/api/templates/portal``.
"""
