//! One function per table that makes row `id` from the seed alone, as COPY text fields.
//! Half the customers are Vietnamese and half English; a customer's contacts, deals, tickets
//! and activities are in its language.

use crate::text::*;
use crate::time::timestamp;

/// How many rows each table gets for a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub customers: u64,
    pub contacts: u64,
    pub deals: u64,
    pub tickets: u64,
    pub activities: u64,
}

impl Plan {
    /// Splits `total` rows: 10% customers, 20% contacts, 20% deals, 25% tickets, the rest
    /// activities (at least one customer).
    pub fn for_total(total: u64) -> Self {
        let customers = (total / 10).max(1);
        let contacts = total * 2 / 10;
        let deals = total * 2 / 10;
        let tickets = total / 4;
        let activities = total.saturating_sub(customers + contacts + deals + tickets);
        Self {
            customers,
            contacts,
            deals,
            tickets,
            activities,
        }
    }

    pub fn total(&self) -> u64 {
        self.customers + self.contacts + self.deals + self.tickets + self.activities
    }

    /// The customer that owns contact / deal `id` (1-based): they are dealt out in turn, so
    /// every customer's rows can be found without a lookup.
    pub fn owner_of(&self, id: u64) -> u64 {
        (id.saturating_sub(1)) % self.customers + 1
    }
}

/// Whether customer `id` is Vietnamese (`vi`) or English (`en`).
pub fn customer_lang(seed: u64, id: u64) -> &'static str {
    if Rng::for_row(seed, 0, id).next_u64() & 1 == 0 {
        "vi"
    } else {
        "en"
    }
}

fn person(rng: &mut Rng, lang: &str) -> String {
    if lang == "vi" {
        format!(
            "{} {} {}",
            rng.pick(VI_SURNAMES),
            rng.pick(VI_MIDDLE),
            rng.pick(VI_GIVEN)
        )
    } else {
        format!("{} {}", rng.pick(EN_FIRST), rng.pick(EN_LAST))
    }
}

fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Customer `id`'s company name (also used by the other tables' texts).
pub fn company_name(seed: u64, id: u64) -> String {
    let mut rng = Rng::for_row(seed, 100, id);
    if customer_lang(seed, id) == "vi" {
        format!(
            "{} {} {}",
            rng.pick(VI_COMPANY_KIND),
            rng.pick(VI_COMPANY_FIELD),
            rng.pick(VI_COMPANY_NAME)
        )
    } else {
        format!(
            "{} {} {}",
            rng.pick(EN_COMPANY_A),
            rng.pick(EN_COMPANY_B),
            rng.pick(EN_COMPANY_SUFFIX)
        )
    }
}

/// Seconds after the demo's epoch at which row `id` was created, and then last updated.
fn created_updated(rng: &mut Rng) -> (u64, u64) {
    let created = rng.below(300 * 86_400);
    (created, created + rng.below(30 * 86_400))
}

/// `customers`: id, name, industry, city, country, lang, tier, email, phone, created_at,
/// updated_at.
pub fn customer(seed: u64, id: u64) -> Vec<String> {
    let lang = customer_lang(seed, id);
    let mut rng = Rng::for_row(seed, 1, id);
    let name = company_name(seed, id);
    let (industry_vi, industry_en) = INDUSTRIES
        .get(usize::try_from(rng.below(INDUSTRIES.len() as u64)).unwrap_or(0))
        .copied()
        .unwrap_or(("", ""));
    let (city, country) = if lang == "vi" {
        (rng.pick(VI_CITIES), "Việt Nam")
    } else {
        EN_CITIES
            .get(usize::try_from(rng.below(EN_CITIES.len() as u64)).unwrap_or(0))
            .copied()
            .unwrap_or(("", ""))
    };
    let industry = if lang == "vi" {
        industry_vi
    } else {
        industry_en
    };
    let domain = if lang == "vi" { "vn" } else { "com" };
    let (c, u) = created_updated(&mut rng);
    vec![
        id.to_string(),
        name.clone(),
        industry.to_owned(),
        city.to_owned(),
        country.to_owned(),
        lang.to_owned(),
        rng.pick(TIERS).to_owned(),
        format!("contact{id}@{}.{domain}", ascii_slug(&name)),
        format!(
            "+84 9{:02} {:03} {:03}",
            rng.below(100),
            rng.below(1000),
            rng.below(1000)
        ),
        timestamp(c),
        timestamp(u),
    ]
}

/// `contacts`: id, customer_id, full_name, title, email, phone, lang, created_at, updated_at.
pub fn contact(seed: u64, plan: &Plan, id: u64) -> Vec<String> {
    let customer_id = plan.owner_of(id);
    let lang = customer_lang(seed, customer_id);
    let mut rng = Rng::for_row(seed, 2, id);
    let name = person(&mut rng, lang);
    let title = if lang == "vi" {
        rng.pick(VI_TITLES)
    } else {
        rng.pick(EN_TITLES)
    };
    let (c, u) = created_updated(&mut rng);
    vec![
        id.to_string(),
        customer_id.to_string(),
        name.clone(),
        title.to_owned(),
        format!("{}.{id}@example.com", ascii_slug(&name)),
        format!(
            "+84 8{:02} {:03} {:03}",
            rng.below(100),
            rng.below(1000),
            rng.below(1000)
        ),
        lang.to_owned(),
        timestamp(c),
        timestamp(u),
    ]
}

/// `deals`: id, customer_id, title, stage, amount, currency, close_date, owner, lang,
/// created_at, updated_at.
pub fn deal(seed: u64, plan: &Plan, id: u64) -> Vec<String> {
    let customer_id = plan.owner_of(id);
    let lang = customer_lang(seed, customer_id);
    let mut rng = Rng::for_row(seed, 3, id);
    let (product_vi, product_en) = PRODUCTS
        .get(usize::try_from(rng.below(PRODUCTS.len() as u64)).unwrap_or(0))
        .copied()
        .unwrap_or(("", ""));
    let company = company_name(seed, customer_id);
    let (title, amount, currency) = if lang == "vi" {
        (
            format!("Hợp đồng cung cấp {product_vi} cho {company}"),
            (50 + rng.below(1950)) * 1_000_000,
            "VND",
        )
    } else {
        (
            format!("Supply of {product_en} to {company}"),
            (10 + rng.below(1990)) * 100,
            "USD",
        )
    };
    let (c, u) = created_updated(&mut rng);
    let close = timestamp(c + 30 * 86_400 + rng.below(120) * 86_400);
    let owner = person(&mut rng, lang);
    vec![
        id.to_string(),
        customer_id.to_string(),
        title,
        rng.pick(STAGES).to_owned(),
        format!("{amount}.00"),
        currency.to_owned(),
        close.get(..10).unwrap_or("2026-01-01").to_owned(),
        owner,
        lang.to_owned(),
        timestamp(c),
        timestamp(u),
    ]
}

/// A ticket's (subject, body) in its language.
fn ticket_text(rng: &mut Rng, lang: &str, order: u64, company: &str) -> (String, String) {
    let month = 1 + rng.below(12);
    let days = 2 + rng.below(10);
    let (pvi, pen) = PRODUCTS
        .get(usize::try_from(rng.below(PRODUCTS.len() as u64)).unwrap_or(0))
        .copied()
        .unwrap_or(("", ""));
    let case = rng.below(8);
    if lang == "vi" {
        let (s, b) = match case {
            0 => (
                format!("Không nhận được hóa đơn tháng {month}"),
                format!(
                    "{company} chưa nhận được hóa đơn VAT tháng {month} cho {pvi}. Kế toán cần hóa đơn trước cuối tuần để quyết toán."
                ),
            ),
            1 => (
                format!("Đơn hàng số {order} giao trễ"),
                format!(
                    "Đơn hàng số {order} ({pvi}) đã trễ {days} ngày so với hẹn. Khách hàng {company} yêu cầu cập nhật ngày giao mới."
                ),
            ),
            2 => (
                "Lỗi đăng nhập vào cổng khách hàng".to_owned(),
                format!(
                    "Nhân viên của {company} không đăng nhập được cổng khách hàng sau khi đổi mật khẩu, báo lỗi mã {order}."
                ),
            ),
            3 => (
                format!("Yêu cầu hoàn tiền cho đơn {order}"),
                format!(
                    "{company} yêu cầu hoàn tiền đơn {order} vì {pvi} không đúng cấu hình đã đặt."
                ),
            ),
            4 => (
                format!("Sản phẩm bị lỗi khi nhận hàng, đơn {order}"),
                format!(
                    "Lô {pvi} trong đơn {order} bị hỏng khi nhận. {company} gửi ảnh và đề nghị đổi hàng trong {days} ngày."
                ),
            ),
            5 => (
                format!("Cần hỗ trợ cài đặt {pvi}"),
                format!(
                    "{company} cần kỹ thuật viên hỗ trợ cài đặt {pvi} tại văn phòng trong {days} ngày tới."
                ),
            ),
            6 => (
                format!("Thay đổi địa chỉ giao hàng đơn {order}"),
                format!("{company} muốn đổi địa chỉ giao hàng của đơn {order} sang chi nhánh mới."),
            ),
            _ => (
                format!("Hỏi về chính sách bảo hành {pvi}"),
                format!(
                    "{company} hỏi thời hạn bảo hành của {pvi} mua tháng {month} và thủ tục bảo hành."
                ),
            ),
        };
        (s, b)
    } else {
        match case {
            0 => (
                format!("Invoice for month {month} not received"),
                format!(
                    "{company} has not received the VAT invoice for month {month} for {pen}. Their accountant needs it before the end of the week."
                ),
            ),
            1 => (
                format!("Order #{order} delivered late"),
                format!(
                    "Order #{order} ({pen}) is {days} days late. {company} asks for a new delivery date."
                ),
            ),
            2 => (
                "Cannot log in to the customer portal".to_owned(),
                format!(
                    "Staff at {company} cannot log in to the customer portal after a password change, error code {order}."
                ),
            ),
            3 => (
                format!("Refund request for order #{order}"),
                format!(
                    "{company} requests a refund for order #{order} because the {pen} do not match the configuration ordered."
                ),
            ),
            4 => (
                format!("Damaged goods on delivery, order #{order}"),
                format!(
                    "Part of the {pen} in order #{order} arrived damaged. {company} sent photos and asks for a replacement within {days} days."
                ),
            ),
            5 => (
                format!("Help installing {pen}"),
                format!(
                    "{company} needs a technician to help install {pen} at their office within {days} days."
                ),
            ),
            6 => (
                format!("Change delivery address for order #{order}"),
                format!("{company} wants order #{order} delivered to their new branch instead."),
            ),
            _ => (
                format!("Warranty question about {pen}"),
                format!(
                    "{company} asks how long the warranty on the {pen} bought in month {month} lasts and how to claim it."
                ),
            ),
        }
    }
}

/// `tickets`: id, customer_id, contact_id, subject, body, status, priority, lang, created_at,
/// updated_at.
pub fn ticket(seed: u64, plan: &Plan, id: u64) -> Vec<String> {
    let mut rng = Rng::for_row(seed, 4, id);
    let customer_id = 1 + rng.below(plan.customers);
    let lang = customer_lang(seed, customer_id);
    let contact_id = (plan.contacts >= customer_id).then_some(customer_id);
    let order = 1000 + id;
    let (subject, body) = ticket_text(&mut rng, lang, order, &company_name(seed, customer_id));
    let (c, u) = created_updated(&mut rng);
    vec![
        id.to_string(),
        customer_id.to_string(),
        contact_id.map_or_else(|| "\\N".to_owned(), |c| c.to_string()),
        subject,
        body,
        rng.pick(TICKET_STATUS).to_owned(),
        rng.pick(PRIORITIES).to_owned(),
        lang.to_owned(),
        timestamp(c),
        timestamp(u),
    ]
}

/// `activities`: id, customer_id, deal_id, kind, body, lang, occurred_at, created_at,
/// updated_at.
pub fn activity(seed: u64, plan: &Plan, id: u64) -> Vec<String> {
    let mut rng = Rng::for_row(seed, 5, id);
    let customer_id = 1 + rng.below(plan.customers);
    let lang = customer_lang(seed, customer_id);
    let deal_id = (plan.deals >= customer_id).then_some(customer_id);
    let company = company_name(seed, customer_id);
    let kind = rng.pick(ACTIVITY_KINDS);
    let who = person(&mut rng, lang);
    let (pvi, pen) = PRODUCTS
        .get(usize::try_from(rng.below(PRODUCTS.len() as u64)).unwrap_or(0))
        .copied()
        .unwrap_or(("", ""));
    let pct = 5 + rng.below(20);
    let body = match (lang, kind) {
        ("vi", "call") => format!(
            "Gọi điện cho {who} ({company}) về {pvi}. Khách muốn giảm giá {pct}% nếu ký hợp đồng trong tháng này."
        ),
        ("vi", "email") => format!(
            "Gửi email báo giá {pvi} cho {who} tại {company}, kèm điều khoản thanh toán 30 ngày."
        ),
        ("vi", "meeting") => format!(
            "Họp với {who} của {company} để trình bày demo {pvi}; khách đánh giá tốt và hẹn gặp lại."
        ),
        ("vi", _) => format!(
            "Ghi chú: {company} đang so sánh {pvi} với đối thủ; {who} là người quyết định, quan tâm đến chiết khấu {pct}%."
        ),
        (_, "call") => format!(
            "Called {who} at {company} about {pen}. They want a {pct}% discount if they sign this month."
        ),
        (_, "email") => {
            format!("Emailed {who} at {company} a quote for {pen} with 30-day payment terms.")
        }
        (_, "meeting") => format!(
            "Met {who} from {company} to demo {pen}; the feedback was positive and a follow-up is booked."
        ),
        _ => format!(
            "Note: {company} is comparing our {pen} with a competitor; {who} decides and cares about a {pct}% discount."
        ),
    };
    let (c, u) = created_updated(&mut rng);
    vec![
        id.to_string(),
        customer_id.to_string(),
        deal_id.map_or_else(|| "\\N".to_owned(), |d| d.to_string()),
        kind.to_owned(),
        body,
        lang.to_owned(),
        timestamp(c),
        timestamp(c),
        timestamp(u),
    ]
}
