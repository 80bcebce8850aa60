"""Remote model repositories (S3, GCS, Azure via obstore), mirrored to local disk.

A remote version is downloaded into `<cache_dir>/<model>/.incoming-<N>`, verified against
its manifest (or proven complete from its content), fsynced and renamed to
`<cache_dir>/<model>/<N>`; the local pipeline serves it from there unchanged.
"""

from .client import Counters
from .config import RemoteConfig, default_cache_dir
from .errors import RemoteError, redact
from .hints import Hints
from .manifest import CLAIM_NAME, MANIFEST_NAME, Manifest, ManifestError, build_manifest
from .mirror import Mirror
from .proof import ShardNeeds, default_shard_needs
from .publish import cli_publish, publish
from .pubsub import PubSubHints
from .queues import open_hints
from .sqs import QueueHints
from .state import MirrorStatus, RemoteVersion
from .store import Remote, is_remote, open_remote

__all__ = [
    "CLAIM_NAME", "MANIFEST_NAME", "Counters", "Hints", "Manifest", "ManifestError", "Mirror",
    "MirrorStatus", "PubSubHints", "QueueHints", "Remote", "RemoteConfig", "RemoteError",
    "RemoteVersion", "ShardNeeds", "build_manifest", "cli_publish", "default_cache_dir",
    "default_shard_needs", "is_remote", "open_hints", "open_remote", "publish", "redact",
]
