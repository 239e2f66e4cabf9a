#include "sync/custom_fields.hpp"

#include "core/config.hpp"

#include <algorithm>
#include <cctype>

namespace speak4::sync {
namespace {

constexpr std::string_view prefix = "customFields.";

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string quoted_names(const std::vector<const store::custom_field_row*>& fields) {
    std::string out;
    for (const auto* f : fields) {
        if (!out.empty())
            out += ", ";
        out += "\"" + f->name + "\" (" + f->id + ")";
    }
    return out;
}

} // namespace

bool needs_listing(const field_map& raw) {
    for (const auto& [from, to] : raw) {
        if (is_ghl_contact_field(to))
            continue;
        if (!to.starts_with(prefix))
            return true; // a name
        const std::string_view x = std::string_view(to).substr(prefix.size());
        if (x.find('.') != std::string_view::npos)
            return true; // a fieldKey ("contact.lead_score")
    }
    return false;
}

bool uses_custom_fields(const field_map& raw) {
    return std::any_of(raw.begin(), raw.end(),
                       [](const auto& kv) { return !is_ghl_contact_field(kv.second); });
}

boost::system::result<resolved_fields, std::string>
resolve_fields(const field_map& raw, const std::vector<store::custom_field_row>* listing) {
    resolved_fields out;
    std::string errors;
    const auto problem = [&errors](const std::string& key, const std::string& why) {
        if (!errors.empty())
            errors += '\n';
        errors += "rules.field_map." + key + ": " + why;
    };
    std::vector<const store::custom_field_row*> contact_fields;
    if (listing)
        for (const auto& f : *listing)
            if (f.model.empty() || f.model == "contact")
                contact_fields.push_back(&f);
    const auto use = [&](const std::string& from, const store::custom_field_row& f) {
        out.map[from] = std::string(prefix) + f.id;
        out.custom[f.id] = f;
    };

    for (const auto& [from, to] : raw) {
        if (is_ghl_contact_field(to)) {
            out.map[from] = to;
            continue;
        }
        if (to.starts_with(prefix)) {
            const std::string x = to.substr(prefix.size());
            if (!listing) {
                if (x.find('.') != std::string::npos)
                    problem(from, "\"" + to +
                                      "\" names a custom field by fieldKey, and the location's "
                                      "custom fields could not be listed (nor were they cached)");
                else
                    out.map[from] = to; // an id: usable without the list
                continue;
            }
            const store::custom_field_row* hit = nullptr;
            for (const auto* f : contact_fields)
                if (f->id == x || f->field_key == x || f->field_key == "contact." + x)
                    hit = f;
            if (hit)
                use(from, *hit);
            else
                problem(from, "\"" + to +
                                  "\" names no contact custom field of the location (by id or "
                                  "fieldKey); `speak4-sync fields` lists them");
            continue;
        }
        // A name.
        if (!listing) {
            problem(from, "\"" + to +
                              "\" is neither a GHL contact field nor customFields.<id>, so it "
                              "names a custom field, and the location's custom fields could not "
                              "be listed (nor were they cached)");
            continue;
        }
        std::vector<const store::custom_field_row*> exact, folded;
        for (const auto* f : contact_fields) {
            if (f->name == to)
                exact.push_back(f);
            else if (lower(f->name) == lower(to))
                folded.push_back(f);
        }
        if (exact.size() == 1) {
            use(from, *exact.front());
        } else if (exact.size() > 1) {
            problem(from, "\"" + to + "\" is ambiguous: " + std::to_string(exact.size()) +
                              " custom fields have that name (" + quoted_names(exact) +
                              "); use customFields.<id>");
        } else {
            std::string why = "\"" + to +
                              "\" is neither a GHL contact field nor the name of a contact "
                              "custom field of the location";
            if (!folded.empty())
                why += " (did you mean " + quoted_names(folded) + "?)";
            why += "; `speak4-sync fields` lists them";
            problem(from, why);
        }
    }
    if (!errors.empty())
        return errors;
    return out;
}

} // namespace speak4::sync
