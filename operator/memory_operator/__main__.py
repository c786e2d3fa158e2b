from memory_operator.cli import main

raise SystemExit(main())
