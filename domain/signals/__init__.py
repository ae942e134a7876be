"""Measurement-based-care signals: rule packs (packs), on-track evaluation (evaluate) and the
clinic's expected-recovery curves (curves). Pure domain; see ADR 0030."""
