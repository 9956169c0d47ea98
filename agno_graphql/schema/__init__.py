"""GraphQL types of the API: no database or agent code here."""
