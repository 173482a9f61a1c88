"""The SQL console in the browser (``/query``): sessions signed in through the hub's own OAuth
authorization code flow with PKCE, the tables a person may read, results paged from query jobs, and
saved queries shared with an organization. No FastAPI here: the pages live in ``hub.api.console``."""
