"""`python -m mlyard.serving --model-uri URI --port P [--host H] [--tracking-uri URI]`."""

from mlyard.serving.server import main

raise SystemExit(main())
