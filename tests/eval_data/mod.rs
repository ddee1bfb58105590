//! Hand-made evaluation data: four tenants' FAQ sets plus labelled user messages
//! (`queries.rs`). Queries were written as a customer would type them on WhatsApp and
//! were not derived from the matcher's output.

pub mod queries;

/// One FAQ entry: (id, question, examples, category).
pub type Faq = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);

/// Tenant name and its FAQ set.
pub const TENANTS: &[(&str, &[Faq])] = &[
    ("bike", BIKE),
    ("clinic", CLINIC),
    ("resto", RESTO),
    ("telco", TELCO),
];

#[rustfmt::skip]
const BIKE: &[Faq] = &[
    ("b_hours", "What are your opening hours?", &["When are you open?", "What time do you close today?"], "Store"),
    ("b_location", "Where is the shop located?", &["What is your address?", "How do I find your store?"], "Store"),
    ("b_service_cost", "How much does a bike service cost?", &["What is the price of a tune-up?", "How much do you charge for a full service?"], "Repairs"),
    ("b_repair_time", "How long does a repair take?", &["When will my bike be ready?", "How many days do repairs usually take?"], "Repairs"),
    ("b_flat", "Do you fix flat tyres?", &["Can you repair a puncture?", "I have a flat tire, can you replace the inner tube?"], "Repairs"),
    ("b_rental", "Do you rent bikes?", &["Can I hire a bicycle for the day?", "How much is bike rental per day?"], "Rentals"),
    ("b_ebike", "Do you sell electric bikes?", &["Do you have e-bikes in stock?", "Can I test ride an electric bicycle?"], "Sales"),
    ("b_returns", "What is your return policy?", &["Can I return a bike I bought online?", "How do I get a refund?"], "Sales"),
    ("b_payment", "Which payment methods do you accept?", &["Can I pay by card?", "Do you offer financing or monthly payments?"], "Sales"),
    ("b_warranty", "What does the warranty cover?", &["Is my frame covered by warranty?", "How long is the guarantee on new bikes?"], "Sales"),
];

#[rustfmt::skip]
const CLINIC: &[Faq] = &[
    ("c_book", "How do I book an appointment?", &["Can I make an appointment online?", "I need to see a doctor, how do I schedule a visit?"], "Appointments"),
    ("c_cancel", "How can I cancel or reschedule my appointment?", &["I can't make it to my appointment tomorrow", "Can I change the time of my booking?"], "Appointments"),
    ("c_hours", "What are the clinic opening hours?", &["Are you open on weekends?", "When does the clinic close?"], "General"),
    ("c_insurance", "Which insurance plans do you accept?", &["Do you take my health insurance?", "Is the visit covered by insurance?"], "Billing"),
    ("c_fees", "How much does a consultation cost?", &["What is the fee for a visit without insurance?", "What are your prices?"], "Billing"),
    ("c_results", "When will I get my test results?", &["How long do blood test results take?", "Where can I see my lab results?"], "Tests"),
    ("c_fasting", "Do I need to fast before a blood test?", &["Can I eat before my blood work?", "Should I skip breakfast before the lab test?"], "Tests"),
    ("c_prescription", "How do I renew a prescription?", &["I need a refill of my medication", "Can the doctor send a repeat prescription to my pharmacy?"], "Prescriptions"),
    ("c_emergency", "What should I do in an emergency?", &["Is there an after-hours number?", "Who do I call at night if it is urgent?"], "General"),
    ("c_parking", "Is there parking at the clinic?", &["Where can I park my car?", "Can I get there by bus?"], "General"),
];

#[rustfmt::skip]
const RESTO: &[Faq] = &[
    ("r_reserve", "Can I make a reservation?", &["How do I book a table?", "Do you take bookings for groups?"], "Bookings"),
    ("r_hours", "What are your opening hours?", &["Are you open on Sunday?", "What time does the kitchen close?"], "General"),
    ("r_menu", "Where can I see the menu?", &["Do you have a menu online?", "What dishes do you serve?"], "Food"),
    ("r_vegan", "Do you have vegetarian or vegan options?", &["Is there anything for vegans on the menu?", "Do you serve meat-free dishes?"], "Food"),
    ("r_allergy", "Can you accommodate food allergies?", &["Are your dishes gluten free?", "I have a nut allergy, is that a problem?"], "Food"),
    ("r_delivery", "Do you deliver?", &["Can I order food for delivery?", "Do you do takeaway?"], "Orders"),
    ("r_parking", "Is there parking nearby?", &["Where can I park when I come to eat?"], "General"),
    ("r_private", "Can I book the restaurant for a private event?", &["Do you host birthday parties?", "Can we rent the whole place for a wedding dinner?"], "Bookings"),
    ("r_kids", "Are children welcome?", &["Do you have a kids menu?", "Do you have high chairs?"], "General"),
    ("r_giftcard", "Do you sell gift cards?", &["Can I buy a voucher for a friend?"], "General"),
];

#[rustfmt::skip]
const TELCO: &[Faq] = &[
    ("t_balance", "How do I check my balance?", &["How much credit do I have left?", "How can I see my remaining data?"], "Account"),
    ("t_topup", "How do I top up my prepaid account?", &["Where can I recharge my phone credit?", "Can I add credit online?"], "Account"),
    ("t_roaming", "Does my plan work abroad?", &["How do I activate roaming?", "How much does it cost to use my phone overseas?"], "Roaming"),
    ("t_sim_lost", "What should I do if my SIM card is lost or stolen?", &["My phone was stolen, how do I block my number?", "How do I get a replacement SIM?"], "SIM"),
    ("t_esim", "Do you support eSIM?", &["How do I activate an eSIM on my iPhone?", "Can I switch from a physical SIM to eSIM?"], "SIM"),
    ("t_port", "Can I keep my number if I switch to you?", &["How do I transfer my number from another provider?", "How long does number porting take?"], "Account"),
    ("t_bill", "Why is my bill higher than usual?", &["I was charged extra this month", "Can you explain the charges on my invoice?"], "Billing"),
    ("t_cancel", "How do I cancel my contract?", &["Is there a fee to end my plan early?", "I want to terminate my subscription"], "Billing"),
    ("t_coverage", "Is there 5G coverage in my area?", &["Why is my signal so weak?", "Where can I see the network coverage map?"], "Network"),
    ("t_internet", "My mobile data is not working", &["I can't connect to the internet on my phone", "How do I set up APN settings?"], "Network"),
];
