#include "quant/repr.h"

#include "quant/outliers_repr.h"
#include "quant/qrow_repr.h"
#include "quant/vq_repr.h"

namespace wc {

namespace {

// The representations this build knows, by id (spec/FORMAT.md §4.4). A new
// representation is a file and a line here.
constexpr Repr kReprs[] = {
    {1, "qrow", qrow_check, qrow_decode_tile, qrow_upgrade_tile},
    {2, "qrow-outliers", qrow_outliers_check, qrow_outliers_decode_tile},
    {3, "vq", vq_check, vq_decode_tile},
};

}  // namespace

const Repr* find_repr(uint8_t id) noexcept {
  for (const auto& r : kReprs)
    if (r.id == id) return &r;
  return nullptr;
}

std::string_view repr_name(uint8_t id) noexcept {
  if (id == 0) return "exact";
  const Repr* r = find_repr(id);
  return r ? r->name : "unknown";
}

}  // namespace wc

namespace wc {

void check_repr_record(const TensorRecord& t, uint64_t at) {
  const Repr* r = find_repr(t.repr);
  if (!r) return;
  try {
    r->check(t);
  } catch (Error& e) {
    e.at_offset(at).at_tensor(t.name);
    throw;
  }
}

}  // namespace wc
