"""consentflow's engine: store, states, intake, verification and the command line."""
