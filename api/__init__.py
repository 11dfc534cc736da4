"""Office CRM: a GraphQL backend for contact ownership, status, audiences and campaigns."""
