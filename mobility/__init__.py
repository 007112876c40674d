"""Bus operations: GTFS-JP import, road network, live vehicle state, stop events,
schedule adherence, autonomy KPIs, GTFS-Realtime and the operators' dashboard."""
