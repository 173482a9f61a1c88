"""The portal's two languages: Vietnamese (``vi``, the default) and English (``en``).

A page is in one language (``<html lang>``, its words from ``WORDS``); a name that has both forms
(a dataset's title, an organization's) shows the page's form first and the other beside it. The reader
switches with ``?lang=en`` / ``?lang=vi`` on any page (remembered in the ``hub_lang`` cookie).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
COOKIE = "hub_lang"


def as_lang(value: str | None) -> Lang | None:
    return "en" if value == "en" else "vi" if value == "vi" else None


WORDS: dict[str, tuple[str, str]] = {
    "home": ("Trang chủ", "Home"),
    "datasets": ("Bộ dữ liệu", "Datasets"),
    "dataset": ("Bộ dữ liệu", "Dataset"),
    "organizations": ("Cơ quan", "Organizations"),
    "organization": ("Cơ quan", "Organization"),
    "groups": ("Lĩnh vực", "Domains"),
    "group": ("Lĩnh vực", "Domain"),
    "tags": ("Từ khóa", "Tags"),
    "res_format": ("Định dạng", "Formats"),
    "license_id": ("Giấy phép", "Licence"),
    "spatial": ("Phạm vi địa lý", "Spatial coverage"),
    "about": ("Giới thiệu", "About"),
    "api_docs": ("Tài liệu API", "API docs"),
    "skip": ("Đến nội dung chính", "Skip to main content"),
    "main_links": ("Liên kết chính", "Main links"),
    "language": ("Ngôn ngữ", "Language"),
    "switch": ("English", "Tiếng Việt"),
    "search": ("Tìm kiếm", "Search"),
    "search_label": ("Tìm bộ dữ liệu", "Search the datasets"),
    "search_hint": (
        'Ví dụ: "đất đai", "truong hoc", "Cần Thơ"',
        'For example: "land", "truong hoc", "Cần Thơ"',
    ),
    "search_button": ("Tìm", "Search"),
    "results": ("kết quả", "results"),
    "no_results": (
        "Không tìm thấy bộ dữ liệu nào. Hãy thử từ khóa khác hoặc bỏ bớt bộ lọc.",
        "No dataset found. Try other words or remove a filter.",
    ),
    "bad_query": (
        "Không hiểu được câu truy vấn này; kết quả dưới đây bỏ qua nó.",
        "This query could not be understood; the results below ignore it.",
    ),
    "filters": ("Bộ lọc", "Filters"),
    "filter_by": ("Lọc theo", "Filter by"),
    "remove_filter": ("Bỏ bộ lọc", "Remove filter"),
    "clear_all": ("Bỏ tất cả bộ lọc", "Clear all filters"),
    "sort": ("Sắp xếp", "Sort by"),
    "apply": ("Áp dụng", "Apply"),
    "sort_relevance": ("Phù hợp nhất", "Relevance"),
    "sort_modified": ("Mới cập nhật", "Last modified"),
    "sort_created": ("Mới tạo", "Newest"),
    "sort_name": ("Tên (A-Z)", "Name (A-Z)"),
    "page": ("Trang", "Page"),
    "pages": ("Phân trang", "Pagination"),
    "previous": ("Trang trước", "Previous"),
    "next": ("Trang sau", "Next"),
    "page_beyond": ("Trang này nằm ngoài kết quả.", "This page is beyond the results."),
    "first_page": ("Về trang đầu", "Back to the first page"),
    "what_is_open": ("Dữ liệu mở ở đây là gì?", "What is open data here?"),
    "open_intro": (
        "Dữ liệu mở do các cơ quan của tỉnh công bố: miễn phí, không cần đăng nhập, ở định dạng mở "
        "(CSV, Parquet, JSON, GeoJSON), kèm từ điển dữ liệu. Dữ liệu về cá nhân chỉ được công bố sau khi "
        "khử định danh và tổng hợp.",
        "Open data published by the province's agencies: free, no login, in open formats (CSV, Parquet, "
        "JSON, GeoJSON), with a data dictionary. Data about persons is published only de-identified and "
        "aggregated.",
    ),
    "reuse_terms": (
        "Bạn được tự do sao chép, phân phối và sử dụng lại, kể cả cho mục đích thương mại, miễn là ghi rõ "
        "nguồn theo giấy phép của từng bộ dữ liệu.",
        "You may copy, share and reuse the data, commercially too, provided you credit the source as each "
        "dataset's licence says.",
    ),
    "read_terms": ("Điều khoản sử dụng", "Terms of reuse"),
    "latest_releases": ("Bản phát hành mới nhất", "Latest releases"),
    "recent": ("Bộ dữ liệu mới cập nhật", "Recently updated datasets"),
    "all_datasets": ("Xem tất cả bộ dữ liệu", "See all datasets"),
    "all_organizations": ("Tất cả cơ quan", "All organizations"),
    "all_groups": ("Tất cả lĩnh vực", "All domains"),
    "count_datasets": ("bộ dữ liệu", "datasets"),
    "no_open_data": (
        "Cơ quan này chưa công bố bộ dữ liệu mở nào.",
        "This organization has not published open data yet.",
    ),
    "group_empty": ("Lĩnh vực này chưa có bộ dữ liệu mở nào.", "This domain has no open dataset yet."),
    "contact": ("Liên hệ", "Contact"),
    "terms": ("Điều khoản", "Terms"),
    "footer_free": ("Dữ liệu mở: miễn phí, không cần đăng nhập.", "Open data: free, no login."),
    "publisher": ("Cơ quan công bố", "Publisher"),
    "licence": ("Giấy phép", "Licence"),
    "frequency": ("Tần suất cập nhật", "Update frequency"),
    "last_updated": ("Cập nhật lần cuối", "Last updated"),
    "stale": ("Quá hạn cập nhật", "Out of date"),
    "fresh": ("Đúng hạn", "Up to date"),
    "temporal": ("Thời gian", "Temporal coverage"),
    "source_system": ("Hệ thống nguồn", "Source system"),
    "last_run": ("Lần nạp gần nhất", "Last load"),
    "rows_loaded": ("dòng đã nạp", "rows loaded"),
    "rows_quarantined": ("dòng bị cách ly (không hợp lệ)", "rows quarantined (invalid)"),
    "derived_from": ("Tổng hợp từ", "Derived from"),
    "not_public_source": (
        "bộ dữ liệu gốc không công khai; chỉ các bản phát hành đã khử định danh được công bố",
        "the source dataset is not public; only its de-identified releases are published",
    ),
    "data_and_resources": ("Dữ liệu và tài nguyên", "Data and resources"),
    "format": ("Định dạng", "Format"),
    "size": ("Dung lượng", "Size"),
    "checksum": ("Mã kiểm tra", "Checksum"),
    "download": ("Tải xuống", "Download"),
    "version": ("Phiên bản", "Version"),
    "built": ("Tạo lúc", "Built"),
    "rows": ("dòng", "rows"),
    "earlier_versions": ("Các phiên bản trước", "Earlier versions"),
    "datastore_table": ("Bảng dữ liệu (DataStore)", "Data table (DataStore)"),
    "full_table_csv": ("Toàn bộ bảng, CSV", "The whole table, CSV"),
    "dictionary": ("Từ điển dữ liệu", "Data dictionary"),
    "column": ("Cột", "Column"),
    "type": ("Kiểu", "Type"),
    "label": ("Tên", "Label"),
    "description": ("Mô tả", "Description"),
    "unit": ("Đơn vị", "Unit"),
    "preview": ("Xem trước", "Preview"),
    "preview_of": ("Xem trước", "Preview of"),
    "preview_none": ("Chưa có dữ liệu để xem trước.", "No data to preview yet."),
    "showing_rows": ("Dòng", "Rows"),
    "of": ("trên", "of"),
    "filter_column": ("Lọc cột", "Filter column"),
    "filter_value": ("chứa", "contains"),
    "filter": ("Lọc", "Filter"),
    "sort_by_column": ("Sắp xếp theo", "Sort by"),
    "ascending": ("tăng dần", "ascending"),
    "descending": ("giảm dần", "descending"),
    "chart": ("Biểu đồ", "Chart"),
    "measure": ("Chỉ số", "Measure"),
    "dimension": ("Theo", "By"),
    "draw": ("Vẽ", "Draw"),
    "total": ("Tổng", "Total"),
    "chart_table": ("Tổng theo nhóm", "Totals by group"),
    "map": ("Bản đồ", "Map"),
    "map_note": (
        "Bản đồ cần JavaScript; dữ liệu vị trí có trong tệp GeoJSON và bảng xem trước.",
        "The map needs JavaScript; the locations are in the GeoJSON file and the preview table.",
    ),
    "map_points": (
        "Mỗi điểm là một đối tượng (tâm của thửa đất, vị trí trường học...). Không có ranh giới xã/phường.",
        "Each point is one feature (a parcel's centroid, a school's location...). "
        "No ward boundaries are drawn.",
    ),
    "use_it": ("Cách sử dụng", "How to use it"),
    "copy": ("Sao chép", "Copy"),
    "copied": ("Đã sao chép", "Copied"),
    "metadata": ("Siêu dữ liệu", "Metadata"),
    "yes": ("có", "yes"),
    "none": ("không có", "none"),
    "unknown": ("chưa rõ", "unknown"),
    "k_note": (
        "Nhóm nhỏ hơn {k} người bị ẩn để bảo vệ dữ liệu cá nhân.",
        "Groups of fewer than {k} persons are withheld to protect personal data.",
    ),
    "resource": ("Tài nguyên", "Resource"),
    "back_to_dataset": ("Về bộ dữ liệu", "Back to the dataset"),
    "api_title": ("Dùng API", "Using the API"),
    "about_title": ("Giới thiệu cổng dữ liệu mở", "About the open-data portal"),
}
FREQUENCIES: dict[str, tuple[str, str]] = {
    "daily": ("Hằng ngày", "Daily"),
    "weekly": ("Hằng tuần", "Weekly"),
    "monthly": ("Hằng tháng", "Monthly"),
    "quarterly": ("Hằng quý", "Quarterly"),
    "annual": ("Hằng năm", "Annual"),
    "irregular": ("Không định kỳ", "Irregular"),
}
GROUP_NAMES: dict[str, tuple[str, str]] = {
    "dat-dai": ("Đất đai", "Land"),
    "tu-phap": ("Tư pháp", "Justice"),
    "ho-tich": ("Hộ tịch", "Civil status"),
    "giao-duc": ("Giáo dục", "Education"),
    "dia-chi": ("Địa chỉ", "Addresses"),
    "y-te": ("Y tế", "Health"),
    "giao-thong": ("Giao thông", "Transport"),
    "moi-truong": ("Môi trường", "Environment"),
    "dan-cu": ("Dân cư", "Population"),
    "kinh-te": ("Kinh tế", "Economy"),
    "tai-chinh": ("Tài chính", "Finance"),
    "nong-nghiep": ("Nông nghiệp", "Agriculture"),
    "du-lich": ("Du lịch", "Tourism"),
    "van-hoa": ("Văn hóa", "Culture"),
    "lao-dong": ("Lao động", "Labour"),
}
"""Names of common lĩnh vực for groups that ``catalog/groups.yaml`` does not title (their title is
their slug): the portal never shows a slug such as ``dat-dai`` as a name."""


@dataclass(frozen=True)
class Tr:
    """The words of one language: ``t("datasets")``; ``t.pair(vi, en)`` picks a bilingual value."""

    lang: Lang

    def __call__(self, key: str, **values: object) -> str:
        vi, en = WORDS[key]
        text = en if self.lang == "en" else vi
        return text.format(**values) if values else text

    @property
    def other(self) -> Lang:
        return "vi" if self.lang == "en" else "en"

    def pick(self, vi: str | None, en: str | None) -> tuple[str, str | None]:
        """(this language's form, the other form when it differs), falling back on what exists."""
        first, second = (en, vi) if self.lang == "en" else (vi, en)
        main = first or second or ""
        beside = second if second and second != main else None
        return main, beside

    def frequency(self, code: str | None) -> str:
        if not code:
            return self("unknown")
        vi, en = FREQUENCIES.get(code, (code, code))
        return en if self.lang == "en" else vi


def group_title(name: str, title: str | None, title_en: str | None = None) -> tuple[str, str | None]:
    """(vi, en) names of a group: its own titles, else the known name of its slug, else the slug."""
    if title and title != name:
        return title, title_en
    known = GROUP_NAMES.get(name)
    if known is not None:
        return known[0], title_en or known[1]
    return title or name, title_en
