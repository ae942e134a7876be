"""Importing assessments from clinical sources (FHIR R4/STU3, CSV) through the application."""
