from mllabs.cli import main

raise SystemExit(main())
