"""PostgreSQL: the error that means "retry later" (errors), the deadlines of a task's database
work (deadlines), the pool (pool), the migrations runner (migrations) and the embedded server
(embedded)."""
