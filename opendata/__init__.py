"""Open data and EBPM (issue 16): privacy-safe public datasets, a DCAT catalogue, the
public ``/open`` API and the city's evidence dashboards, all from aggregate views."""
