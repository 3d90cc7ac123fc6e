//! Word lists of the demo records, in Vietnamese and English, and the small deterministic
//! random source that picks from them.

/// SplitMix64: a fixed, documented generator, so a seed gives the same records on every
/// platform and every version of this crate's dependencies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one row: the seed, the table and the row id mixed together, so each row
    /// can be regenerated on its own.
    pub fn for_row(seed: u64, table: u64, id: u64) -> Self {
        let mut r = Self(seed ^ table.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.0 ^= id.wrapping_mul(0xD1B5_4A32_D192_ED03);
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(i).copied().unwrap_or("")
    }
}

pub const VI_SURNAMES: &[&str] = &[
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý",
];
pub const VI_MIDDLE: &[&str] = &["Văn", "Thị", "Minh", "Hữu", "Thanh", "Quốc", "Ngọc", "Đức"];
pub const VI_GIVEN: &[&str] = &[
    "An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng", "Hương",
    "Khánh", "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quân", "Tâm", "Thảo", "Trang",
    "Tuấn", "Vy", "Yến",
];
pub const EN_FIRST: &[&str] = &[
    "James", "Mary", "John", "Linda", "Robert", "Emily", "Michael", "Sarah", "David", "Anna",
    "Daniel", "Laura", "Peter", "Grace", "Thomas", "Olivia",
];
pub const EN_LAST: &[&str] = &[
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clark", "Lewis", "Walker", "Hall", "Young",
    "King", "Wright", "Green", "Baker", "Carter", "Evans",
];

pub const VI_COMPANY_KIND: &[&str] = &["Công ty TNHH", "Công ty Cổ phần", "Tập đoàn"];
pub const VI_COMPANY_FIELD: &[&str] = &[
    "Thương mại",
    "Dịch vụ",
    "Sản xuất",
    "Công nghệ",
    "Xây dựng",
    "Vận tải",
    "Thực phẩm",
    "Dệt may",
];
pub const VI_COMPANY_NAME: &[&str] = &[
    "Sao Mai",
    "Hoàng Long",
    "Phú Thịnh",
    "An Phát",
    "Minh Khang",
    "Đại Việt",
    "Thành Công",
    "Bình Minh",
    "Hưng Thịnh",
    "Việt Tiến",
    "Trường Sơn",
    "Hòa Bình",
];
pub const EN_COMPANY_A: &[&str] = &[
    "Blue", "Silver", "Northern", "Pacific", "Golden", "Summit", "Harbor", "Green", "Atlas",
    "Crescent",
];
pub const EN_COMPANY_B: &[&str] = &[
    "River",
    "Peak",
    "Logistics",
    "Foods",
    "Systems",
    "Textiles",
    "Electronics",
    "Trading",
    "Analytics",
    "Builders",
];
pub const EN_COMPANY_SUFFIX: &[&str] = &["Ltd", "Inc", "Group", "Co."];

/// Industries: (Vietnamese, English), the English one is also the attribute value.
pub const INDUSTRIES: &[(&str, &str)] = &[
    ("Bán lẻ", "retail"),
    ("Sản xuất", "manufacturing"),
    ("Logistics", "logistics"),
    ("Tài chính", "finance"),
    ("Giáo dục", "education"),
    ("Y tế", "healthcare"),
    ("Bất động sản", "real estate"),
    ("Nông nghiệp", "agriculture"),
];
pub const VI_CITIES: &[&str] = &[
    "Hà Nội",
    "TP. Hồ Chí Minh",
    "Đà Nẵng",
    "Hải Phòng",
    "Cần Thơ",
    "Nha Trang",
    "Huế",
    "Biên Hòa",
];
pub const EN_CITIES: &[(&str, &str)] = &[
    ("Singapore", "Singapore"),
    ("Sydney", "Australia"),
    ("London", "United Kingdom"),
    ("Austin", "United States"),
    ("Toronto", "Canada"),
    ("Manchester", "United Kingdom"),
    ("Auckland", "New Zealand"),
    ("Seattle", "United States"),
];
pub const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
pub const VI_TITLES: &[&str] = &[
    "Giám đốc",
    "Trưởng phòng kinh doanh",
    "Kế toán trưởng",
    "Nhân viên mua hàng",
    "Giám đốc điều hành",
    "Trưởng phòng IT",
];
pub const EN_TITLES: &[&str] = &[
    "CEO",
    "Sales manager",
    "Chief accountant",
    "Purchasing officer",
    "Operations director",
    "IT manager",
];
/// Products: (Vietnamese, English).
pub const PRODUCTS: &[(&str, &str)] = &[
    ("phần mềm CRM", "CRM software"),
    ("máy in công nghiệp", "industrial printers"),
    ("dịch vụ vận chuyển", "shipping services"),
    ("giấy phép Microsoft 365", "Microsoft 365 licenses"),
    ("thiết bị mạng", "network equipment"),
    ("bảo trì hệ thống", "system maintenance"),
    ("máy chủ lưu trữ", "storage servers"),
    ("đào tạo nhân viên", "staff training"),
];
pub const STAGES: &[&str] = &[
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];
pub const TICKET_STATUS: &[&str] = &["open", "pending", "resolved", "closed"];
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
pub const ACTIVITY_KINDS: &[&str] = &["note", "call", "email", "meeting"];
