"""The model client a pane samples with (the Sample and Compare panes)."""

from __future__ import annotations

from engine import api


class UsesClient:
    """Mixin for a pane that samples: ``self.client`` is the ``ModelClient`` handed to the pane
    (``client=``, kept in ``self._client``: tests and benches pass their own), else the app-wide
    ``api.shared_client()``, taken on first use."""

    _client: api.ModelClient | None = None

    @property
    def client(self) -> api.ModelClient:
        if self._client is None:
            self._client = api.shared_client()
        return self._client
