"""The GraphQL playground served at ``GET /graphql``: GraphiQL from Kobo's own files, opening on Kobo's examples."""
