from abgate.cli import main

raise SystemExit(main())
