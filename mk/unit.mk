# Unit tests: every tests/unit/*.c goes into one Criterion binary.
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(B)/tests/unit-tests
TEST_CFLAGS := $(TEST_BASE_CFLAGS) -Isrc/core -Itests
# test_rules_lazy.c runs programs under the shim and `kimifix check`.
$(B)/tests/unit/test_rules_lazy.o: TEST_CFLAGS += -DKF_TEST_BUILD='"$(abspath $(B))"' 
$(B)/tests/unit/test_mode.o: TEST_CFLAGS += -DKF_TEST_BUILD='"$(abspath $(B))"'

$(B)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

$(UNIT_BIN): $(UNIT_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $(UNIT_OBJ) $(CORE_LIB) -lcriterion -pthread $(LDFLAGS)

.PHONY: check-unit
check-unit: $(UNIT_BIN) $(B)/libkimifix.so $(B)/kimifix
	$(UNIT_BIN) --jobs=2 $(CRITERION_ARGS)
