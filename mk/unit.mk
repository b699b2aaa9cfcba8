# Unit tests: every tests/unit/*.c goes into one Criterion binary.
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(B)/tests/unit-tests
TEST_CFLAGS := $(CSTD) -Wall -Wextra -Werror $(OPT) -Isrc/core -Itests $(EXTRA_CFLAGS)

$(B)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

$(UNIT_BIN): $(UNIT_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $(UNIT_OBJ) $(CORE_LIB) -lcriterion -pthread $(LDFLAGS)

.PHONY: check-unit
check-unit: $(UNIT_BIN)
	$(UNIT_BIN) --jobs=2 $(CRITERION_ARGS)
