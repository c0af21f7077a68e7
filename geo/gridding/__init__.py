"""Pure gridding algorithms over GeoDataFrames: generate, rebalance, edit, assign, staff.

Nothing here touches a database; storage lives in :mod:`geo.store`.
"""
