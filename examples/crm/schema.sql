-- The demo CRM: customers, their contacts, deals, support tickets and activities (notes,
-- calls, e-mails, meetings). Every table has `updated_at` (set on every change by a trigger,
-- so an incremental sync sees it) and `deleted_at` (a soft delete, which also bumps
-- `updated_at`). An index on (updated_at, id) serves the keyset sync.

CREATE TABLE IF NOT EXISTS customers (
    id          bigint PRIMARY KEY,
    name        text        NOT NULL,
    industry    text        NOT NULL,
    city        text        NOT NULL,
    country     text        NOT NULL,
    lang        text        NOT NULL CHECK (lang IN ('vi', 'en')),
    tier        text        NOT NULL,
    email       text        NOT NULL,
    phone       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE IF NOT EXISTS contacts (
    id          bigint PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customers (id),
    full_name   text        NOT NULL,
    title       text        NOT NULL,
    email       text        NOT NULL,
    phone       text        NOT NULL,
    lang        text        NOT NULL CHECK (lang IN ('vi', 'en')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE IF NOT EXISTS deals (
    id          bigint PRIMARY KEY,
    customer_id bigint        NOT NULL REFERENCES customers (id),
    title       text          NOT NULL,
    stage       text          NOT NULL,
    amount      numeric(14,2) NOT NULL,
    currency    text          NOT NULL,
    close_date  date          NOT NULL,
    owner       text          NOT NULL,
    lang        text          NOT NULL CHECK (lang IN ('vi', 'en')),
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE IF NOT EXISTS tickets (
    id          bigint PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customers (id),
    contact_id  bigint      REFERENCES contacts (id),
    subject     text        NOT NULL,
    body        text        NOT NULL,
    status      text        NOT NULL,
    priority    text        NOT NULL,
    lang        text        NOT NULL CHECK (lang IN ('vi', 'en')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE IF NOT EXISTS activities (
    id          bigint PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customers (id),
    deal_id     bigint      REFERENCES deals (id),
    ticket_id   bigint      REFERENCES tickets (id),
    kind        text        NOT NULL CHECK (kind IN ('note', 'call', 'email', 'meeting')),
    body        text        NOT NULL,
    lang        text        NOT NULL CHECK (lang IN ('vi', 'en')),
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE INDEX IF NOT EXISTS customers_sync  ON customers  (updated_at, id);
CREATE INDEX IF NOT EXISTS contacts_sync   ON contacts   (updated_at, id);
CREATE INDEX IF NOT EXISTS deals_sync      ON deals      (updated_at, id);
CREATE INDEX IF NOT EXISTS tickets_sync    ON tickets    (updated_at, id);
CREATE INDEX IF NOT EXISTS activities_sync ON activities (updated_at, id);
CREATE INDEX IF NOT EXISTS contacts_customer   ON contacts   (customer_id);
CREATE INDEX IF NOT EXISTS deals_customer      ON deals      (customer_id);
CREATE INDEX IF NOT EXISTS tickets_customer    ON tickets    (customer_id);
CREATE INDEX IF NOT EXISTS activities_customer ON activities (customer_id);

-- Every UPDATE moves updated_at to the statement's clock, unless the statement sets it itself.
CREATE OR REPLACE FUNCTION crm_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'contacts', 'deals', 'tickets', 'activities'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I_touch ON %I', t, t);
        EXECUTE format('CREATE TRIGGER %I_touch BEFORE UPDATE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION crm_touch_updated_at()', t, t);
    END LOOP;
END $$;
