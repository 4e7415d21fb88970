from appliance.models.cli import main

raise SystemExit(main())
