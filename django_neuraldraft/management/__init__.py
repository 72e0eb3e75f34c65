"""Management commands of django-neuraldraft, and what they share to print."""
