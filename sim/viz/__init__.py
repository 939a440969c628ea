"""Visualisation: charts, the printed summary and the HTML report."""
