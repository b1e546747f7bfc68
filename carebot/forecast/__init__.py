"""Forecasts from the delivered history: transit times, run-out dates, restock moments."""
