"""GridMap map rendering (Folium). Depends on ``geo``."""
