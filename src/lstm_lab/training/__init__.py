"""Lightning side of the project: tasks, the shared LightningModule, the training entry point, devices."""

import warnings

# Lightning 2.6 calls a torch 2.13 API that torch now reports as deprecated, once per fit; nothing to act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
