"""consentflow's documents: the EOI form, field extraction, validation and the consent PDF."""
