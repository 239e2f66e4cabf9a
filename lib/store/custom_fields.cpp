#include "store/custom_fields.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace speak4::store {

namespace bj = boost::json;

void save_custom_fields(SQLite::Database& db, const std::vector<custom_field_row>& fields,
                        const std::string& fetched_at) {
    SQLite::Transaction tx(db);
    db.exec("DELETE FROM custom_fields");
    SQLite::Statement ins(db, "INSERT OR REPLACE INTO custom_fields(id, name, field_key, "
                              "data_type, model, options, fetched_at) VALUES (?,?,?,?,?,?,?)");
    for (const auto& f : fields) {
        bj::array opts;
        for (const auto& o : f.options)
            opts.emplace_back(o);
        ins.bind(1, f.id);
        ins.bind(2, f.name);
        ins.bind(3, f.field_key);
        ins.bind(4, f.data_type);
        ins.bind(5, f.model);
        ins.bind(6, bj::serialize(opts));
        ins.bind(7, fetched_at);
        ins.exec();
        ins.reset();
        ins.clearBindings();
    }
    SQLite::Statement mark(db, "INSERT OR REPLACE INTO custom_fields_listing(id, fetched_at) "
                               "VALUES (1, ?1)");
    mark.bind(1, fetched_at);
    mark.exec();
    tx.commit();
}

std::optional<custom_field_cache> load_custom_fields(SQLite::Database& db) {
    SQLite::Statement when(db, "SELECT fetched_at FROM custom_fields_listing WHERE id = 1");
    if (!when.executeStep())
        return std::nullopt;
    custom_field_cache out;
    out.fetched_at = when.getColumn(0).getString();
    SQLite::Statement q(db, "SELECT id, name, field_key, data_type, model, options FROM "
                            "custom_fields ORDER BY rowid");
    while (q.executeStep()) {
        custom_field_row f;
        f.id = q.getColumn(0).getString();
        f.name = q.getColumn(1).getString();
        f.field_key = q.getColumn(2).getString();
        f.data_type = q.getColumn(3).getString();
        f.model = q.getColumn(4).getString();
        boost::system::error_code ec;
        const auto v = bj::parse(q.getColumn(5).getString(), ec);
        if (!ec && v.is_array())
            for (const auto& o : v.as_array())
                if (o.is_string())
                    f.options.emplace_back(o.as_string());
        out.fields.push_back(std::move(f));
    }
    return out;
}

} // namespace speak4::store
