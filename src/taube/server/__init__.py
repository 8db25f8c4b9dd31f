"""The taube server: HTTP API, WebSocket gateway, delivery, retention."""
