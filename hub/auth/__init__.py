"""Access: OAuth server and token validation, principals, grants, the audit log."""
