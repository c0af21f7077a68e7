"""The sample county's fixed facts: codes and names, CRSs, the pools of place and
person names, building and household sizes, barriers."""

from __future__ import annotations

import numpy as np

__all__ = [
    "CENTER_LONLAT",
    "CITY",
    "COORD_DECIMALS",
    "COUNTY",
    "COUNTY_CODE",
    "COUNTY_PREFIX",
    "EDGE_MARGIN_M",
    "FORMATS",
    "METRIC",
    "PROVINCE",
    "WGS84",
]

# --------------------------------------------------------------------------- constants

COUNTY_PREFIX = "330803"
COUNTY_CODE = COUNTY_PREFIX + "000000"
PROVINCE = "浙江省"
CITY = "衢州市"
COUNTY = "衢江区"

WGS84 = "EPSG:4326"
METRIC = "EPSG:32650"  # UTM 50N, metric CRS used for all construction
CENTER_LONLAT = (118.95, 29.0)

#: Inner margin (m) that keeps households strictly inside their area polygon.
EDGE_MARGIN_M = 5.0
#: Decimal places of every output coordinate (1e-7 degree ~ 1 cm).
COORD_DECIMALS = 7

FORMATS = ("gpkg", "geojson", "parquet", "csv")

_STREET_NAMES = ["樟潭", "浮石"]
_TOWN_NAMES = [
    "廿里",
    "后溪",
    "莲花",
    "上方",
    "峡川",
    "杜泽",
    "高家",
    "湖南",
    "大洲",
    "全旺",
]
_XIANG_NAMES = ["太真", "灰坪", "周家", "岭洋", "黄坛口", "举村", "双桥", "云溪"]

_PLACE_A = list(
    "湖沈上下大小东西南北高黄石新马杨龙凤桥塘溪坑山岭林柳梅竹茶花樟杜后前中双"
    "三五九白青金银铜田横长周王徐吴郑毛余叶方姜祝汪邵莲峡举云岩坂湾"
)
_PLACE_B = list(
    "仁家坞源头口坪田塘溪山岭桥湾畈垄埠店庄岙墩洋川里坂坑门渡潭滩岗亭园林圩陇殿庙宅阳泽江"
)
_ROAD_SUFFIX = ["路", "路", "路", "街", "大道"]

_SURNAMES = list(
    "徐王吴郑毛汪叶余方姜祝周陈李张刘杨黄胡朱邵程柴童占郭何林赵孙马高谢罗宋唐许韩冯"
    "邓曹彭曾肖田董袁潘蒋蔡杜苏魏吕丁沈姚卢钟陆范金石夏江傅应翁楼雷龚鲍"
)
_GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国文红玲林斌海波辉鹏宇浩俊峰燕"
    "婷雪梅兰萍琴云飞志永春晓东新荣金福根水生亮德仁义礼智信忠良松柏宏振兴旺达成卫民庆"
    "祥瑞丹颖慧欣怡佳琳晨阳凯鑫锋然婕"
)
_MOBILE_PREFIX = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "180", "181", "182", "183",
    "186", "187", "188", "189", "198", "199",
]  # fmt: skip

# (units, floors, rooms per floor) of ordinary apartment buildings: 20-120 households
_APT_CONFIGS = np.array(
    [
        (2, 5, 2), (3, 6, 2), (4, 6, 2), (2, 11, 2), (2, 18, 2), (2, 26, 2),
        (3, 18, 2), (1, 33, 3), (2, 15, 3), (3, 7, 2), (4, 7, 2), (2, 30, 2),
        (6, 5, 2), (2, 6, 2), (3, 11, 2),
    ]
)  # fmt: skip
# very large buildings (> 300 households) that need splitting across grids
_BIG_CONFIGS = np.array(
    [(5, 32, 2), (3, 33, 4), (6, 30, 2), (4, 26, 4), (8, 28, 2), (6, 34, 3)]
)

_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

# people per household, index = number of people
_P_RURAL = np.array([0.08, 0.14, 0.24, 0.22, 0.18, 0.09, 0.05])
_P_URBAN = np.array([0.12, 0.18, 0.28, 0.25, 0.11, 0.04, 0.02])

# (kind, name, half width of the no-household corridor in m)
_BARRIER_SPECS = [
    ("river", "衢江", 150.0),
    ("river", "乌溪江", 60.0),
    ("main_road", "G320国道", 20.0),
    ("main_road", "G60沪昆高速", 30.0),
    ("main_road", "S222省道", 15.0),
    ("railway", "沪昆铁路", 20.0),
]
