"""The portal: a browser front end for the runner, shipped as static files (no build step).

It signs JobSpecs with an Ed25519 key held in WebCrypto (non-extractable, kept in IndexedDB),
submits them, follows the job, verifies receipts and inclusion proofs in the browser, and shows the
difference report. The runner serves it at ``/portal/`` (:func:`mount_portal`); ``beacon portal``
serves it alone from another origin, talking to a runner elsewhere (:func:`portal_app`), which is
how the Day-1 ``portal`` phase makes the browser's CORS real.
"""

from __future__ import annotations

from beacon.portal.server import PORTAL_PATH, STATIC_DIR, PortalServer, mount_portal, portal_app, portal_csp

__all__ = ["PORTAL_PATH", "STATIC_DIR", "PortalServer", "mount_portal", "portal_app", "portal_csp"]
