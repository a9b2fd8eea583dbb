"""The core's own defaults, registered through the same hooks as any third-party plugin.

The plugin host loads these modules by name (``tlcore.plugins.DEFAULT_PLUGINS``); nothing else imports them."""
