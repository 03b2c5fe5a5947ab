"""The WhatsApp Cloud API connector: sends, webhooks, templates, profile -- and the sandbox."""
