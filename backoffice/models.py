"""No models: the app exists for its templates, views and the post_migrate hook that creates the role groups."""
